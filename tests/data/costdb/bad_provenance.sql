-- Bad input: a 'paper' model must cite its paper.
INSERT INTO model (device, op, form, alpha_s, beta_s, source)
  VALUES ('h100', 'gemm', 'linear', 1.7e-4, 4.3e-14, 'paper');
