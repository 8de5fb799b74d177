//! Cambricon MLU370 backend through MagicMind (cargo feature `mlu`).
//! OWNER: mlu helper — to be written.
