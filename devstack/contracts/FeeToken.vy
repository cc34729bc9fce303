# pragma version ~=0.4.3
# Fee-on-transfer test ERC-20 for dev chains: every transfer keeps ${fee_bps} basis points for a fee
# collector. Transfer logs show what really moved: the net amount to the receiver and the fee to the
# collector. Runtime bytecode only (anvil_setCode, see devstack/devtokens.py): no constructor, the
# parameters are compile-time constants. mint() is open to anyone: never deploy it on a real network.

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256

NAME: constant(String[64]) = "${name}"
SYMBOL: constant(String[32]) = "${symbol}"
DECIMALS: constant(uint8) = ${decimals}
FEE_BPS: constant(uint256) = ${fee_bps}
FEE_COLLECTOR: constant(address) = ${fee_collector}

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
totalSupply: public(uint256)


@external
@view
def name() -> String[64]:
    return NAME


@external
@view
def symbol() -> String[32]:
    return SYMBOL


@external
@view
def decimals() -> uint8:
    return DECIMALS


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    assert receiver != empty(address), "transfer to zero address"
    assert self.balanceOf[sender] >= amount, "insufficient balance"
    fee: uint256 = amount * FEE_BPS // 10000
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount - fee
    log Transfer(sender=sender, receiver=receiver, value=amount - fee)
    if fee > 0:
        self.balanceOf[FEE_COLLECTOR] += fee
        log Transfer(sender=sender, receiver=FEE_COLLECTOR, value=fee)


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    allowed: uint256 = self.allowance[sender][msg.sender]
    if allowed != max_value(uint256):
        assert allowed >= amount, "insufficient allowance"
        self.allowance[sender][msg.sender] = allowed - amount
    self._transfer(sender, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def mint(receiver: address, amount: uint256):
    assert receiver != empty(address), "mint to zero address"
    self.totalSupply += amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=empty(address), receiver=receiver, value=amount)
