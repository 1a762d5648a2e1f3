"""The frontier of a trace: one leg per chain walks the graph from its seeds and injections (Bitcoin:
``utxo``, EVM: ``evm``), and ``release`` turns a matched bridge release into injections for the
destination chain's leg."""
