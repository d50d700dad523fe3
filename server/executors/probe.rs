//! The probe runner: verification probes of Support Center, DataTransfer API and Management API.
