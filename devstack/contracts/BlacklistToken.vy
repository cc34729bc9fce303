# pragma version ~=0.4.3
# Test ERC-20 for dev chains with USDT-style sender controls: a blacklisted sender's transfer reverts
# (USDT's addBlackList), a frozen sender's transfer returns false without reverting (as some old tokens
# do). Runtime bytecode only (anvil_setCode, see devstack/devtokens.py): no constructor, no owner; mint,
# addBlackList and freeze are open to anyone: never deploy it on a real network.

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

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
totalSupply: public(uint256)
isBlackListed: public(HashMap[address, bool])
isFrozen: public(HashMap[address, bool])


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
def _transfer(sender: address, receiver: address, amount: uint256) -> bool:
    assert not self.isBlackListed[sender], "sender is blacklisted"
    if self.isFrozen[sender]:
        return False
    assert receiver != empty(address), "transfer to zero address"
    assert self.balanceOf[sender] >= amount, "insufficient balance"
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=sender, receiver=receiver, value=amount)
    return True


@external
def transfer(receiver: address, amount: uint256) -> bool:
    return self._transfer(msg.sender, receiver, amount)


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    allowed: uint256 = self.allowance[sender][msg.sender]
    if allowed != max_value(uint256):
        assert allowed >= amount, "insufficient allowance"
        self.allowance[sender][msg.sender] = allowed - amount
    return self._transfer(sender, receiver, amount)


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def addBlackList(account: address):
    self.isBlackListed[account] = True


@external
def freeze(account: address):
    self.isFrozen[account] = True


@external
def mint(receiver: address, amount: uint256):
    assert receiver != empty(address), "mint to zero address"
    self.totalSupply += amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=empty(address), receiver=receiver, value=amount)
