"""Keys, did:key identifiers, signatures, the encrypted keystore, key succession."""
