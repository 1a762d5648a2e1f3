// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// A fixed-denomination mixer pool in the style of Tornado Cash's 0.1/1/10/100 ETH pools, SIMPLIFIED:
/// there are no zero-knowledge proofs and no Merkle tree. A deposit stores a commitment
/// keccak256(nullifier, secret); a withdrawal reveals that preimage, so on this pool deposits and
/// withdrawals are linkable on-chain (a real Tornado pool hides which deposit a withdrawal spends).
/// The events and the money flow are Tornado's: deposits of exactly the denomination, withdrawals paid
/// out by internal calls to the recipient (denomination - fee) and to the relayer (fee). Owner-less.
contract MixerPool {
    uint256 public immutable denomination;
    uint32 public nextIndex;
    mapping(bytes32 => bool) public commitments;
    mapping(bytes32 => bool) public nullifierHashes;

    event Deposit(bytes32 indexed commitment, uint32 leafIndex, uint256 timestamp);
    event Withdrawal(address to, bytes32 nullifierHash, address indexed relayer, uint256 fee);

    constructor(uint256 _denomination) {
        require(_denomination > 0, "denomination");
        denomination = _denomination;
    }

    function deposit(bytes32 commitment) external payable {
        require(msg.value == denomination, "send exactly the denomination");
        require(!commitments[commitment], "commitment already submitted");
        commitments[commitment] = true;
        emit Deposit(commitment, nextIndex, block.timestamp);
        nextIndex += 1;
    }

    /// Withdraw one deposit: (nullifier, secret) must be the preimage of a deposited commitment whose
    /// nullifier has not been spent.
    function withdraw(address payable to, bytes32 nullifier, bytes32 secret, address payable relayer, uint256 fee)
        external
    {
        require(fee <= denomination, "fee exceeds denomination");
        bytes32 commitment = keccak256(abi.encodePacked(nullifier, secret));
        require(commitments[commitment], "unknown commitment");
        bytes32 nullifierHash = keccak256(abi.encodePacked(nullifier));
        require(!nullifierHashes[nullifierHash], "note already spent");
        nullifierHashes[nullifierHash] = true;
        (bool ok,) = to.call{value: denomination - fee}("");
        require(ok, "payment to recipient failed");
        if (fee > 0) {
            (ok,) = relayer.call{value: fee}("");
            require(ok, "payment to relayer failed");
        }
        emit Withdrawal(to, nullifierHash, relayer, fee);
    }
}
