-- Moodle tables shared by both SCORM schemas (columns the adapter reads).
CREATE TABLE mdl_user (id BIGINT PRIMARY KEY, username VARCHAR(100) NOT NULL, idnumber VARCHAR(255) NOT NULL DEFAULT '',
  email VARCHAR(100) NOT NULL DEFAULT '', firstname VARCHAR(100) NOT NULL DEFAULT '', lastname VARCHAR(100) NOT NULL DEFAULT '',
  deleted SMALLINT NOT NULL DEFAULT 0);
CREATE TABLE mdl_course (id BIGINT PRIMARY KEY, shortname VARCHAR(255) NOT NULL, idnumber VARCHAR(100) NOT NULL DEFAULT '');
CREATE TABLE mdl_scorm (id BIGINT PRIMARY KEY, course BIGINT NOT NULL, name VARCHAR(255) NOT NULL, version VARCHAR(9) NOT NULL);
CREATE TABLE mdl_scorm_scoes (id BIGINT PRIMARY KEY, scorm BIGINT NOT NULL, identifier VARCHAR(255) NOT NULL,
  scormtype VARCHAR(5) NOT NULL DEFAULT '', title VARCHAR(255) NOT NULL DEFAULT '');
INSERT INTO mdl_user (id, username, idnumber, email, deleted) VALUES
  (1, 'u1', 'P001', 'u1@example.org', 0),
  (2, 'u2', 'P002', 'u2@example.org', 0),
  (3, 'u3', 'P003', 'u3@example.org', 0),
  (4, 'u4', 'P004', 'u4@example.org', 0),
  (5, 'u5', 'P005', 'u5@example.org', 0),
  (6, 'u6', 'P006', 'u6@example.org', 0),
  (7, 'u7', '', 'u7@example.org', 0),
  (8, 'u8', 'P008', 'u8@example.org', 1);
INSERT INTO mdl_course (id, shortname, idnumber) VALUES (10, 'SAFE12', 'E-12'), (20, 'MULTI04', 'E-2004'), (30, 'NOCODE', '');
INSERT INTO mdl_scorm (id, course, name, version) VALUES (1, 10, 'Safety 1.2', 'SCORM_1.2'), (2, 20, 'Multi 2004', 'SCORM_1.3'), (3, 30, 'Unlinked', 'SCORM_1.2');
INSERT INTO mdl_scorm_scoes (id, scorm, identifier, scormtype, title) VALUES
  (100, 1, 'org_safety', '', 'organization'), (101, 1, 'sco_safety', 'sco', 'Safety'),
  (201, 2, 'sco_intro', 'sco', 'Intro'), (202, 2, 'sco_exam', 'sco', 'Exam'), (203, 2, 'asset_pdf', 'asset', 'Handout'),
  (301, 3, 'sco_x', 'sco', 'X');
