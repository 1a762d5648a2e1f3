// Standard-JSON compile of every .sol file in a folder with the npm solc package (no network).
// Usage: node compile-contracts.js SRC_DIR OUT_DIR
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require(path.join(__dirname, 'node', 'node_modules', 'solc'));

const [srcDir, outDir] = process.argv.slice(2);
const EVM_VERSION = 'cancun';
const sources = {};
for (const f of fs.readdirSync(srcDir).sort()) {
  if (f.endsWith('.sol')) sources[f] = { content: fs.readFileSync(path.join(srcDir, f), 'utf8') };
}
const input = {
  language: 'Solidity',
  sources,
  settings: {
    evmVersion: EVM_VERSION,
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
  },
};
const findImports = (p) => {
  const f = path.join(srcDir, path.basename(p));
  return fs.existsSync(f) ? { contents: fs.readFileSync(f, 'utf8') } : { error: 'not found: ' + p };
};
const out = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
let failed = false;
for (const e of out.errors || []) {
  if (e.severity === 'error') failed = true;
  process.stderr.write(e.formattedMessage + '\n');
}
if (failed) process.exit(1);
fs.mkdirSync(outDir, { recursive: true });
let n = 0;
for (const [file, contracts] of Object.entries(out.contracts)) {
  for (const [name, c] of Object.entries(contracts)) {
    if (!c.evm.bytecode.object) continue; // interfaces
    const artifact = {
      contractName: name,
      source: file,
      compiler: 'solc ' + solc.version(),
      evmVersion: EVM_VERSION,
      abi: c.abi,
      bytecode: '0x' + c.evm.bytecode.object,
      deployedBytecode: '0x' + c.evm.deployedBytecode.object,
    };
    fs.writeFileSync(path.join(outDir, name + '.json'), JSON.stringify(artifact, null, 1) + '\n');
    n++;
  }
}
process.stdout.write(`compiled ${n} contracts with solc ${solc.version()} into ${outDir}\n`);
