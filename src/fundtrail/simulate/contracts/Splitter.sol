// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// Splits the ETH it is sent across recipients in one transaction (internal transfers).
/// split() reverts the whole transaction if any payment fails; splitLenient() ignores failed payments
/// (a failed internal call moves no value) and keeps what it could not pay.
contract Splitter {
    function split(address payable[] calldata to, uint256[] calldata amounts) external payable {
        require(to.length == amounts.length, "length mismatch");
        uint256 total;
        for (uint256 i = 0; i < to.length; i++) {
            total += amounts[i];
            (bool ok,) = to[i].call{value: amounts[i]}("");
            require(ok, "payment failed");
        }
        require(total == msg.value, "amounts must add up to the value sent");
    }

    function splitLenient(address payable[] calldata to, uint256[] calldata amounts) external payable {
        require(to.length == amounts.length, "length mismatch");
        for (uint256 i = 0; i < to.length; i++) {
            (bool ok,) = to[i].call{value: amounts[i]}("");
            ok; // a failed payment stays here
        }
    }

    receive() external payable {}
}

/// Refuses every ETH payment (to make internal calls fail).
contract Rejecter {
    receive() external payable {
        revert("no ETH accepted");
    }
}
