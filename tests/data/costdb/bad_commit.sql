-- Bad input: a profile may not end the build's transaction.
INSERT INTO device (name, kind, peak_flops, source) VALUES ('x3', 'gpu', 1e15, 'datasheet');
COMMIT;
