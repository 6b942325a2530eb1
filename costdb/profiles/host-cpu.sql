-- host-cpu profile: communication fits for the host executor (one MPI process per rank on
-- one machine), so that `moesched sim --topo host-cpu:nodes=1,gpus=N` and `moesched db`
-- describe the host before any calibration. NOT measured and not from a vendor sheet.
--
-- The host-cpu device row and its compute models (linear gemm and attn, a rough
-- 100 GFLOP/s fp32) live in datasheet.sql, which runs before this file (sorted order).
-- Here: alpha-beta fits t = alpha_s + beta_s_per_byte * bytes for the four comm ops,
-- derived from the same figures as the generated topology preset `host-cpu` in
-- core/topo.c (intra-node link 10 GB/s per direction, 1 us latency: shared-memory MPI),
-- with the analytic network model's formulas (docs/SIM.md) for a group of 2 ranks on one
-- node (lat = 2 x 1 us per hop, bw = 10 GB/s):
--   xchg (one send a->b of B bytes):  2 us + B / 10 GB/s
--   allreduce (buffer B, n = 2):      2(n-1) lat + 2(n-1)/n B / bw = 4 us + B / 10 GB/s
--   allgather, reducescatter (piece B per rank, n = 2): (n-1) lat + (n-1) B / bw
--                                     = 2 us + B / 10 GB/s
-- `moesched calibrate --backend host` measures all four (source 'measured'), which then
-- take precedence; `moesched validate` also derives the simulated link from the measured
-- xchg fit (docs/CALIBRATION.md).

INSERT INTO comm_model (device, op, alpha_s, beta_s_per_byte, source, note) VALUES
  ('host-cpu', 'xchg', 2e-6, 1e-10, 'datasheet',
   'guess: 2 x 1 us latency + 10 GB/s per direction (topology preset host-cpu), 2 ranks'),
  ('host-cpu', 'allreduce', 4e-6, 1e-10, 'datasheet',
   'guess: ring, 2 ranks: 2(n-1) x 2 us + 2(n-1)/n x bytes / 10 GB/s'),
  ('host-cpu', 'allgather', 2e-6, 1e-10, 'datasheet',
   'guess: ring, 2 ranks: (n-1) x 2 us + (n-1) x piece bytes / 10 GB/s'),
  ('host-cpu', 'reducescatter', 2e-6, 1e-10, 'datasheet',
   'guess: ring, 2 ranks: (n-1) x 2 us + (n-1) x piece bytes / 10 GB/s');
