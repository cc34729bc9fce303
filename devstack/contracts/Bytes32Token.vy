# pragma version ~=0.4.3
# Test contract for metadata reading: an old-style token whose symbol() and name() return bytes32 (as
# MKR and SAI do) instead of a string. Runtime bytecode only (anvil_setCode); no balances needed.

@external
@view
def symbol() -> bytes32:
    return ${symbol_bytes32}


@external
@view
def name() -> bytes32:
    return ${symbol_bytes32}


@external
@view
def decimals() -> uint256:
    return ${decimals}


@external
@view
def balanceOf(account: address) -> uint256:
    return 0
