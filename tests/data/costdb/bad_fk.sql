-- Bad input: a model for a device no profile declares.
INSERT INTO model (device, op, form, alpha_s, beta_s, source, citation)
  VALUES ('h999', 'gemm', 'linear', 1e-5, 1e-15, 'paper', 'nobody 2025');
