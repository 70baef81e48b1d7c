-- Fixture data for both dialects. Times count from T0 = 1717200000
-- (2024-06-01 00:00 UTC). See adapters/moodle/database_test.go for what
-- each row must end as.
INSERT INTO mdl_user (id, username, idnumber, firstname, lastname, email, deleted, mnethostid) VALUES
 (1, 'guest', '', 'Guest', 'User', 'root@localhost', 0, 1),
 (10, 'anna', 'P100', 'Anna', 'Jansen', 'anna@example.nl', 0, 1),
 (11, 'bram', 'P101', 'Bram', 'de Vries', 'bram@example.nl', 0, 1),
 (12, 'carla', '', 'Carla', 'Smit', 'carla@example.nl', 0, 1),
 (13, 'dirk', 'P103', 'Dirk', 'Bakker', 'dirk@example.nl', 1, 1),
 (14, 'eva', 'P104', 'Eva', 'Visser', 'eva@example.nl', 0, 1);

INSERT INTO mdl_course (id, fullname, shortname, idnumber, enablecompletion) VALUES
 (1, 'Academy', 'site', '', 0),
 (2, 'Veiligheid op de werkvloer', 'vca', 'E-VCA', 1),
 (3, 'Excel voor gevorderden', 'excel', 'E-XL', 1),
 (4, 'Ethiek', 'ethiek', '', 1),
 (5, 'Introductie', 'intro', 'E-INTRO', 1);

INSERT INTO mdl_grade_items (id, courseid, itemname, itemtype, itemmodule, iteminstance, calculation, grademax, gradepass) VALUES
 (20, 2, NULL, 'course', NULL, 2, NULL, 100.00000, 55.00000),
 (21, 2, 'Toets', 'mod', 'quiz', 7, NULL, 10.00000, 0.00000),
 (30, 3, NULL, 'course', NULL, 3, '=##gi31##', 10.00000, 0.00000),
 (40, 4, NULL, 'course', NULL, 4, NULL, 100.00000, 50.00000);

INSERT INTO mdl_grade_grades (id, itemid, userid, rawgrade, rawgrademax, finalgrade) VALUES
 (200, 20, 10, NULL, 100.00000, 66.66667),
 (201, 20, 11, NULL, 100.00000, 40.00000),
 (202, 21, 10, 9.90000, 10.00000, 9.90000),
 (203, 30, 10, NULL, 100.00000, 7.50000),
 (204, 40, 14, NULL, 100.00000, 80.00000),
 (205, 20, 12, NULL, 100.00000, 90.00000);

INSERT INTO mdl_course_completions (id, userid, course, timeenrolled, timestarted, timecompleted) VALUES
 (101, 10, 2, 1717100000, 1717100000, 1717200100),
 (102, 11, 2, 1717100000, 1717100000, 1717200200),
 (103, 12, 2, 1717100000, 1717100000, 1717200300),
 (104, 14, 2, 1717100000, 1717100000, 1717200300),
 (105, 10, 3, 1717100000, 1717100000, 1717200400),
 (106, 14, 4, 1717100000, 1717100000, 1717200500),
 (107, 10, 5, 1717100000, 1717100000, 1717200600),
 (108, 13, 2, 1717100000, 1717100000, 1717200700),
 (109, 11, 5, 1717100000, 1717100000, NULL);

INSERT INTO mdl_user_info_field (id, shortname, name, datatype) VALUES (1, 'cvid', 'Coachview id', 'text');
INSERT INTO mdl_user_info_data (id, userid, fieldid, data) VALUES
 (1, 10, 1, 'CV-100'),
 (2, 11, 1, 'CV-101'),
 (3, 14, 1, '');
