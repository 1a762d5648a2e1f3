// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import "./IERC20.sol";

/// A lock-and-release bridge: users lock ETH or tokens here naming a destination chain and address
/// (BridgeDeposit); the operator releases funds that arrived on another chain (BridgeRelease).
/// token = address(0) means native ETH.
contract Bridge {
    address public immutable operator;
    uint256 public nextDepositId;
    mapping(bytes32 => bool) public released;

    event BridgeDeposit(uint256 indexed depositId, address indexed sender, address token, uint256 amount,
        string destChain, string destAddress);
    event BridgeRelease(uint256 indexed depositId, address indexed recipient, address token, uint256 amount,
        string srcChain, string srcTx);

    constructor() {
        operator = msg.sender;
    }

    function depositETH(string calldata destChain, string calldata destAddress) external payable {
        require(msg.value > 0, "nothing to bridge");
        emit BridgeDeposit(nextDepositId++, msg.sender, address(0), msg.value, destChain, destAddress);
    }

    function depositToken(address token, uint256 amount, string calldata destChain, string calldata destAddress)
        external
    {
        require(amount > 0, "nothing to bridge");
        require(IERC20(token).transferFrom(msg.sender, address(this), amount), "transferFrom failed");
        emit BridgeDeposit(nextDepositId++, msg.sender, token, amount, destChain, destAddress);
    }

    function release(uint256 depositId, address payable recipient, address token, uint256 amount,
        string calldata srcChain, string calldata srcTx) external
    {
        require(msg.sender == operator, "only operator");
        bytes32 key = keccak256(abi.encode(srcChain, depositId));
        require(!released[key], "already released");
        released[key] = true;
        if (token == address(0)) {
            (bool ok,) = recipient.call{value: amount}("");
            require(ok, "ETH release failed");
        } else {
            require(IERC20(token).transfer(recipient, amount), "token release failed");
        }
        emit BridgeRelease(depositId, recipient, token, amount, srcChain, srcTx);
    }
}
