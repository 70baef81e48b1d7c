-- Moodle 4.3 and later: scorm_attempt, scorm_element, scorm_scoes_value (same data as moodle_track.sql).
CREATE TABLE mdl_scorm_attempt (id BIGINT PRIMARY KEY, userid BIGINT NOT NULL, scormid BIGINT NOT NULL, attempt BIGINT NOT NULL DEFAULT 1);
CREATE UNIQUE INDEX mdl_scoratte_usescoatt_uix ON mdl_scorm_attempt (userid, scormid, attempt);
CREATE TABLE mdl_scorm_element (id BIGINT PRIMARY KEY, element VARCHAR(255) NOT NULL);
CREATE UNIQUE INDEX mdl_scorelem_ele_uix ON mdl_scorm_element (element);
CREATE TABLE mdl_scorm_scoes_value (id BIGINT PRIMARY KEY, scoid BIGINT NOT NULL, attemptid BIGINT NOT NULL, elementid BIGINT NOT NULL,
  value TEXT NOT NULL, timemodified BIGINT NOT NULL);
CREATE UNIQUE INDEX mdl_scorscoeval_atteleid_uix ON mdl_scorm_scoes_value (attemptid, scoid, elementid);
INSERT INTO mdl_scorm_attempt (id, userid, scormid, attempt) VALUES
  (1, 1, 1, 1),
  (2, 2, 1, 1),
  (3, 2, 1, 2),
  (4, 3, 2, 1),
  (5, 4, 2, 1),
  (6, 5, 1, 1),
  (7, 6, 1, 1),
  (8, 7, 1, 1),
  (9, 8, 1, 1),
  (10, 1, 3, 1);
INSERT INTO mdl_scorm_element (id, element) VALUES
  (1, 'cmi.core.lesson_status'),
  (2, 'cmi.core.score.raw'),
  (3, 'cmi.completion_status'),
  (4, 'cmi.success_status'),
  (5, 'cmi.score.scaled'),
  (6, 'cmi.core.exit'),
  (7, 'cmi.core.score.max');
INSERT INTO mdl_scorm_scoes_value (id, scoid, attemptid, elementid, value, timemodified) VALUES
  (1, 101, 1, 1, 'passed', 1740000600),
  (2, 101, 1, 2, '85', 1740000600),
  (3, 101, 2, 1, 'failed', 1740000700),
  (4, 101, 2, 2, '40', 1740000700),
  (5, 101, 3, 1, 'passed', 1740000800),
  (6, 101, 3, 2, '72', 1740000800),
  (7, 201, 4, 3, 'completed', 1740000900),
  (8, 201, 4, 4, 'passed', 1740000900),
  (9, 201, 4, 5, '0.9', 1740000900),
  (10, 202, 4, 3, 'incomplete', 1740000950),
  (11, 202, 4, 4, 'unknown', 1740000950),
  (12, 201, 5, 3, 'completed', 1740001000),
  (13, 201, 5, 4, 'passed', 1740001000),
  (14, 201, 5, 5, '0.8', 1740001000),
  (15, 202, 5, 3, 'completed', 1740001100),
  (16, 202, 5, 4, 'passed', 1740001100),
  (17, 202, 5, 5, '0.6', 1740001100),
  (18, 203, 5, 6, '', 1740001100),
  (19, 101, 6, 1, 'passed', 1740001200),
  (20, 101, 6, 2, '8O', 1740001200),
  (21, 101, 7, 1, 'passed', 1740001300),
  (22, 101, 7, 2, '7,5', 1740001300),
  (23, 101, 7, 7, '10', 1740001300),
  (24, 101, 8, 1, 'passed', 1740001400),
  (25, 101, 8, 2, '90', 1740001400),
  (26, 101, 9, 1, 'passed', 1740001500),
  (27, 101, 9, 2, '90', 1740001500),
  (28, 301, 10, 1, 'passed', 1740001600),
  (29, 301, 10, 2, '1.0E2', 1740001600);
