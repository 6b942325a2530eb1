-- Bad input: a model whose source is not one of measured | paper | datasheet.
INSERT INTO model (device, op, form, alpha_s, beta_s, source, efficiency)
  VALUES ('h100', 'gemm', 'linear', 1e-5, 1e-15, 'guess', 0.5);
