// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import "./IERC20.sol";

/// An exchange's hot wallet: whoever holds the owner key can send its ETH and tokens. A theft is the
/// owner key in the wrong hands; the withdrawals it makes are internal transfers from this contract.
contract HotWallet {
    address public owner;

    event Withdrawn(address indexed to, address token, uint256 amount);

    constructor() payable {
        owner = msg.sender;
    }

    receive() external payable {}

    function send(address payable to, uint256 amount) external {
        require(msg.sender == owner, "only owner");
        (bool ok,) = to.call{value: amount}("");
        require(ok, "send failed");
        emit Withdrawn(to, address(0), amount);
    }

    function sendToken(address token, address to, uint256 amount) external {
        require(msg.sender == owner, "only owner");
        require(IERC20(token).transfer(to, amount), "token send failed");
        emit Withdrawn(to, token, amount);
    }
}
