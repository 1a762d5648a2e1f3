// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import "./IERC20.sol";

/// A Uniswap-v2-style constant-product pair of native ETH (asset 0) and one ERC-20 token (asset 1),
/// with Uniswap's 0.3% fee and its Swap event. Liquidity is added by anyone (no LP shares: a test pair).
contract DexPair {
    address public immutable token;
    uint256 public reserve0; // ETH
    uint256 public reserve1; // token

    event Swap(address indexed sender, uint256 amount0In, uint256 amount1In, uint256 amount0Out,
        uint256 amount1Out, address indexed to);
    event Sync(uint256 reserve0, uint256 reserve1);

    constructor(address _token) {
        token = _token;
    }

    function addLiquidity(uint256 tokenAmount) external payable {
        require(IERC20(token).transferFrom(msg.sender, address(this), tokenAmount), "transferFrom failed");
        reserve0 += msg.value;
        reserve1 += tokenAmount;
        emit Sync(reserve0, reserve1);
    }

    function getAmountOut(uint256 amountIn, uint256 reserveIn, uint256 reserveOut) public pure returns (uint256) {
        uint256 amountInWithFee = amountIn * 997;
        return (amountInWithFee * reserveOut) / (reserveIn * 1000 + amountInWithFee);
    }

    function swapETHForTokens(uint256 minOut, address to) external payable returns (uint256 out) {
        out = getAmountOut(msg.value, reserve0, reserve1);
        require(out >= minOut && out > 0, "insufficient output");
        reserve0 += msg.value;
        reserve1 -= out;
        require(IERC20(token).transfer(to, out), "transfer failed");
        emit Swap(msg.sender, msg.value, 0, 0, out, to);
        emit Sync(reserve0, reserve1);
    }

    function swapTokensForETH(uint256 amountIn, uint256 minOut, address payable to) external returns (uint256 out) {
        out = getAmountOut(amountIn, reserve1, reserve0);
        require(out >= minOut && out > 0, "insufficient output");
        require(IERC20(token).transferFrom(msg.sender, address(this), amountIn), "transferFrom failed");
        reserve1 += amountIn;
        reserve0 -= out;
        (bool ok,) = to.call{value: out}("");
        require(ok, "ETH transfer failed");
        emit Swap(msg.sender, 0, amountIn, out, 0, to);
        emit Sync(reserve0, reserve1);
    }
}
