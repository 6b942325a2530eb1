-- Bad input: an SQL syntax error on line 5 (a missing comma).
INSERT INTO calibration_run (id, host, date, backend) VALUES
  (900, 'node1', '2025-01-01', 'cuda');
INSERT INTO measurement (run_id, device, op, x, time_s)
  VALUES (900 'h100', 'gemm', 1e9, 1e-3);
