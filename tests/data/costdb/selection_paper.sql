-- Test profile (after costdb/profiles/datasheet.sql): no measured model for h100, two
-- papers and a newer datasheet model: the newer paper (101) wins.
INSERT INTO model (id, device, op, form, alpha_s, beta_s, source, citation) VALUES
  (101, 'h100', 'gemm', 'linear', 2e-4, 3e-15, 'paper', 'newer paper'),
  (100, 'h100', 'gemm', 'linear', 1e-4, 2e-15, 'paper', 'older paper');
INSERT INTO model (id, device, op, form, alpha_s, beta_s, source, efficiency)
  VALUES (200, 'h100', 'gemm', 'linear', 1e-6, 1e-15, 'datasheet', 0.9);
