-- Test profile (after costdb/profiles/datasheet.sql): more gemm models for h100, to check
-- the selection order measured > paper > datasheet, highest id first within a source.
INSERT INTO calibration_run (id, host, date, backend, versions, note)
  VALUES (1, 'testhost', '2025-01-02', 'cuda', 'cuda 12.4', 'test run');
INSERT INTO model (id, device, op, form, alpha_s, beta_s, source, citation) VALUES
  (100, 'h100', 'gemm', 'linear', 1e-4, 2e-15, 'paper', 'older paper'),
  (101, 'h100', 'gemm', 'linear', 2e-4, 3e-15, 'paper', 'newer paper');
-- id 99 is inserted last but has the lower id: 102 wins.
INSERT INTO model (id, device, op, form, alpha_s, beta_s, source, run_id, r2) VALUES
  (102, 'h100', 'gemm', 'linear', 3e-5, 1.6e-15, 'measured', 1, 0.999),
  (99, 'h100', 'gemm', 'linear', 4e-5, 1.7e-15, 'measured', 1, 0.99);
