//! barge-network: bridges, veth pairs, IPAM, published ports and per-network DNS, all through
//! netlink and nftables from Rust (see DESIGN.md). Knows nothing of images or the API.
