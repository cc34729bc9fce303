# pragma version ~=0.4.3
# Rebasing test ERC-20 for dev chains: balances are shares times a global index, so a rebase changes
# every holder's balance with no Transfer log. Transfer logs are in token units. Runtime bytecode only
# (anvil_setCode, see devstack/devtokens.py): no constructor, so an index of 0 means "not yet set" (1.0).
# mint() and rebase() are open to anyone: never deploy it on a real network.

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
ONE: constant(uint256) = 10**18

shares: public(HashMap[address, uint256])
totalShares: public(uint256)
allowance: public(HashMap[address, HashMap[address, uint256]])
_index: uint256


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
@view
def _current_index() -> uint256:
    if self._index == 0:
        return ONE
    return self._index


@external
@view
def index() -> uint256:
    return self._current_index()


@external
@view
def balanceOf(account: address) -> uint256:
    return self.shares[account] * self._current_index() // ONE


@external
@view
def totalSupply() -> uint256:
    return self.totalShares * self._current_index() // ONE


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    assert receiver != empty(address), "transfer to zero address"
    moved: uint256 = amount * ONE // self._current_index()
    assert self.shares[sender] >= moved, "insufficient balance"
    self.shares[sender] -= moved
    self.shares[receiver] += moved
    log Transfer(sender=sender, receiver=receiver, value=amount)


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
def rebase(numerator: uint256, denominator: uint256):
    """Multiply every balance by numerator / denominator (no Transfer logs, like a real rebase)."""
    assert numerator > 0 and denominator > 0, "bad ratio"
    self._index = self._current_index() * numerator // denominator


@external
def mint(receiver: address, amount: uint256):
    assert receiver != empty(address), "mint to zero address"
    minted: uint256 = amount * ONE // self._current_index()
    self.totalShares += minted
    self.shares[receiver] += minted
    log Transfer(sender=empty(address), receiver=receiver, value=amount)
