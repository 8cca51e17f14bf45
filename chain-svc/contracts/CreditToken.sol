// SPDX-License-Identifier: MIT
// CreditToken: the ERC-20 that mirrors every credit deduction on-chain.
// The master wallet (m/44'/60'/0'/0/0) deploys it and receives the whole
// initial supply; chain-svc transfers cost x 10^decimals to users' custodial
// addresses. Compiled with solc-js and deployed by services/deploy-token.mjs.
pragma solidity ^0.8.20;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

contract CreditToken is ERC20 {
    constructor(uint256 initialSupply) ERC20("Credit Token", "CRD") {
        _mint(msg.sender, initialSupply);
    }
}
