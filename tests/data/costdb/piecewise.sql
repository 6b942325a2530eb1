-- Test profile (after costdb/profiles/datasheet.sql): hand-made piecewise gemm models.
-- toy: points (1e9 FLOP, 1 ms), (2e9, 3 ms: the mean of two rows), (4e9, 5 ms), inserted
-- out of order. toy1: a single point (1e9, 2 ms). nomodel: a device without any model.
INSERT INTO device (name, kind, peak_flops, source, note) VALUES
  ('toy', 'gpu', 1e12, 'datasheet', 'test device'),
  ('toy1', 'gpu', 1e12, 'datasheet', 'test device, one point'),
  ('nomodel', 'gpu', 1e12, 'datasheet', 'test device without models');
INSERT INTO calibration_run (id, host, date, backend) VALUES (7, 'testhost', '2025-01-03', 'host');
INSERT INTO measurement (run_id, device, op, shape, x, time_s, trials) VALUES
  (7, 'toy', 'gemm', 'm=1000 n=1000 k=2000', 4e9, 5e-3, 20),
  (7, 'toy', 'gemm', 'm=1000 n=1000 k=500', 1e9, 1e-3, 20),
  (7, 'toy', 'gemm', 'm=1000 n=1000 k=1000', 2e9, 2.5e-3, 20),
  (7, 'toy', 'gemm', 'm=1000 n=1000 k=1000', 2e9, 3.5e-3, 20),
  (7, 'toy1', 'gemm', 'm=1000 n=1000 k=500', 1e9, 2e-3, 20),
  (7, 'toy', 'other', NULL, 3e9, 1.0, 1); -- another op: not a point of toy's gemm model
INSERT INTO model (device, op, form, run_id, source) VALUES
  ('toy', 'gemm', 'piecewise', 7, 'measured'),
  ('toy1', 'gemm', 'piecewise', 7, 'measured');
