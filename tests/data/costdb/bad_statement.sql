-- Bad input: profiles may only insert rows.
INSERT INTO device (name, kind, peak_flops, source) VALUES ('x2', 'gpu', 1e15, 'datasheet');
DELETE FROM model WHERE device = 'h100';
