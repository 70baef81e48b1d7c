-- A custom SCORM player's tracking table (one row per learner, course, attempt and SCO).
CREATE TABLE tracking (
  id BIGINT PRIMARY KEY,
  learner VARCHAR(50) NOT NULL,
  course_code VARCHAR(50) NOT NULL,
  attempt_no INT NOT NULL,
  sco VARCHAR(100) NOT NULL,
  status VARCHAR(30) NOT NULL DEFAULT '',
  completion VARCHAR(30) NOT NULL DEFAULT '',
  success VARCHAR(30) NOT NULL DEFAULT '',
  raw_score VARCHAR(30) NOT NULL DEFAULT '',
  max_score VARCHAR(30) NOT NULL DEFAULT '',
  scaled VARCHAR(30) NOT NULL DEFAULT '',
  updated BIGINT NOT NULL
);
INSERT INTO tracking (id, learner, course_code, attempt_no, sco, status, completion, success, raw_score, max_score, scaled, updated) VALUES
  (1, 'C001', 'CUST-1', 1, 'main', 'passed', '', '', '66', '100', '', 1740000100),
  (2, 'C002', 'CUST-1', 1, 'main', 'failed', '', '', '30', '100', '', 1740000200),
  (3, 'C002', 'CUST-1', 2, 'main', '', 'completed', 'passed', '', '', '0.75', 1740000300),
  (4, 'C003', 'CUST-2', 1, 'part_a', '', 'completed', 'passed', '', '', '1', 1740000400),
  (5, 'C003', 'CUST-2', 1, 'part_b', '', 'incomplete', 'unknown', '', '', '', 1740000500),
  (6, 'C004', 'CUST-1', 1, 'main', 'done', '', '', '50', '100', '', 1740000600),
  (7, 'C005', 'CUST-1', 1, 'main', 'passed', '', '', ' 6,5 ', '10', '', 1740000700);
