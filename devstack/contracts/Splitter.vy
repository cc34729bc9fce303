# pragma version ~=0.4.3
# Dev/test contract: splits the native value it receives between two recipients in one transaction
# (two internal value transfers). No constructor and no storage: placed with anvil_setCode.


@external
@payable
def split(first: address, second: address, first_share: uint256):
    """Pay ``first_share`` to ``first`` and the rest of msg.value to ``second``."""
    assert first_share <= msg.value, "share above value"
    send(first, first_share)
    raw_call(second, b"", value=msg.value - first_share)
