//! Runbooks: one declarative file per procedure in the seed, embedded in the binary.
