//! Object storage (S3): the SWB egress store, staging, the datalake.
