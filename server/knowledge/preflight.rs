//! Preflight: the vendor's rules about the estate, checked before the window opens.
