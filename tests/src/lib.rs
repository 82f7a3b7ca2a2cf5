//! End-to-end test harness for the local stack.
