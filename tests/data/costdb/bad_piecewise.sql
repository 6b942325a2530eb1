-- Bad input: a piecewise model whose calibration run has no points for it.
INSERT INTO calibration_run (id, host, date, backend) VALUES (901, 'node1', '2025-01-01', 'cuda');
INSERT INTO model (device, op, form, run_id, source) VALUES ('h100', 'gemm', 'piecewise', 901, 'measured');
