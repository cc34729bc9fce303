# pragma version ~=0.4.3
# Dev/test contract: forwards the native value it receives (an internal value transfer for tracing).
# No constructor and no storage: placed with anvil_setCode by devstack/devtokens.py.


@external
@payable
def forward(receiver: address):
    """Send all of msg.value on to ``receiver``."""
    send(receiver, msg.value)


@external
@payable
def forward_then_fail(receiver: address):
    """Forward inside a call that reverts: nothing moves (a reverted frame)."""
    raw_call(receiver, b"", value=msg.value, revert_on_failure=True)
    raise "always reverts"


@external
@payable
def try_forward(receiver: address):
    """Forward through a sub-call that reverts, swallow the failure and keep the value here."""
    success: bool = False
    response: Bytes[32] = b""
    success, response = raw_call(
        self, abi_encode(receiver, method_id=method_id("forward_then_fail(address)")),
        max_outsize=32, value=msg.value, revert_on_failure=False
    )
