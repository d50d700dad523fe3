//! The SQL executor: Registry and Directory database work over TDS (tiberius).
