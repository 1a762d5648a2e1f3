// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// Holds ETH until destroyed; selfdestruct sends its whole balance to the beneficiary.
contract Vault {
    constructor() payable {}

    receive() external payable {}

    function destroy(address payable beneficiary) external {
        selfdestruct(beneficiary);
    }
}

/// Creates Vaults with value (a CREATE that moves ETH), and can create-and-destroy in one transaction.
contract Factory {
    event Created(address vault, uint256 value);

    function create() external payable returns (address vault) {
        vault = address(new Vault{value: msg.value}());
        emit Created(vault, msg.value);
    }

    function createAndDestroy(address payable beneficiary) external payable returns (address vault) {
        Vault v = new Vault{value: msg.value}();
        vault = address(v);
        emit Created(vault, msg.value);
        v.destroy(beneficiary);
    }
}
