"""Fault-and-bad-input tests (FAULT_PLAN.md): crashes, full disks, locks, hostile input, tenant isolation."""
