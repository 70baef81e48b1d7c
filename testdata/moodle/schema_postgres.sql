-- The Moodle tables the moodle adapter reads, as Moodle 4.5 creates them on
-- PostgreSQL (lib/db/install.xml, user/profile fields), reduced to the
-- columns that matter plus a few neighbours. Prefix mdl_.
CREATE TABLE mdl_user (
    id BIGSERIAL PRIMARY KEY,
    auth VARCHAR(20) NOT NULL DEFAULT 'manual',
    confirmed SMALLINT NOT NULL DEFAULT 0,
    deleted SMALLINT NOT NULL DEFAULT 0,
    suspended SMALLINT NOT NULL DEFAULT 0,
    mnethostid BIGINT NOT NULL DEFAULT 0,
    username VARCHAR(100) NOT NULL DEFAULT '',
    idnumber VARCHAR(255) NOT NULL DEFAULT '',
    firstname VARCHAR(100) NOT NULL DEFAULT '',
    lastname VARCHAR(100) NOT NULL DEFAULT '',
    email VARCHAR(100) NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX mdl_user_mneuse_uix ON mdl_user (mnethostid, username);
CREATE INDEX mdl_user_idn_ix ON mdl_user (idnumber);

CREATE TABLE mdl_course (
    id BIGSERIAL PRIMARY KEY,
    category BIGINT NOT NULL DEFAULT 0,
    fullname VARCHAR(1333) NOT NULL DEFAULT '',
    shortname VARCHAR(255) NOT NULL DEFAULT '',
    idnumber VARCHAR(100) NOT NULL DEFAULT '',
    enablecompletion SMALLINT NOT NULL DEFAULT 0
);
CREATE INDEX mdl_cour_idn_ix ON mdl_course (idnumber);

CREATE TABLE mdl_course_completions (
    id BIGSERIAL PRIMARY KEY,
    userid BIGINT NOT NULL DEFAULT 0,
    course BIGINT NOT NULL DEFAULT 0,
    timeenrolled BIGINT NOT NULL DEFAULT 0,
    timestarted BIGINT NOT NULL DEFAULT 0,
    timecompleted BIGINT,
    reaggregate BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX mdl_courcomp_usecou_uix ON mdl_course_completions (userid, course);
CREATE INDEX mdl_courcomp_use_ix ON mdl_course_completions (userid);
CREATE INDEX mdl_courcomp_cou_ix ON mdl_course_completions (course);
CREATE INDEX mdl_courcomp_tim_ix ON mdl_course_completions (timecompleted);

CREATE TABLE mdl_grade_items (
    id BIGSERIAL PRIMARY KEY,
    courseid BIGINT,
    categoryid BIGINT,
    itemname VARCHAR(255),
    itemtype VARCHAR(30) NOT NULL DEFAULT '',
    itemmodule VARCHAR(30),
    iteminstance BIGINT,
    itemnumber BIGINT,
    idnumber VARCHAR(255),
    calculation TEXT,
    gradetype SMALLINT NOT NULL DEFAULT 1,
    grademax NUMERIC(10,5) NOT NULL DEFAULT 100,
    grademin NUMERIC(10,5) NOT NULL DEFAULT 0,
    gradepass NUMERIC(10,5) NOT NULL DEFAULT 0,
    needsupdate BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX mdl_graditem_cou_ix ON mdl_grade_items (courseid);
CREATE INDEX mdl_graditem_itenee_ix ON mdl_grade_items (itemtype, needsupdate);

CREATE TABLE mdl_grade_grades (
    id BIGSERIAL PRIMARY KEY,
    itemid BIGINT NOT NULL,
    userid BIGINT NOT NULL,
    rawgrade NUMERIC(10,5),
    rawgrademax NUMERIC(10,5) NOT NULL DEFAULT 100,
    rawgrademin NUMERIC(10,5) NOT NULL DEFAULT 0,
    finalgrade NUMERIC(10,5),
    hidden BIGINT NOT NULL DEFAULT 0,
    overridden BIGINT NOT NULL DEFAULT 0,
    timemodified BIGINT
);
CREATE UNIQUE INDEX mdl_gradgrad_useite_uix ON mdl_grade_grades (userid, itemid);
CREATE INDEX mdl_gradgrad_ite_ix ON mdl_grade_grades (itemid);
CREATE INDEX mdl_gradgrad_use_ix ON mdl_grade_grades (userid);

-- One row per change of a grade (unless $CFG->disablegradehistory), with
-- its time: how database mode finds regraded course totals.
CREATE TABLE mdl_grade_grades_history (
    id BIGSERIAL PRIMARY KEY,
    action BIGINT NOT NULL DEFAULT 0,
    oldid BIGINT NOT NULL,
    source VARCHAR(255),
    timemodified BIGINT,
    loggeduser BIGINT,
    itemid BIGINT NOT NULL,
    userid BIGINT NOT NULL,
    rawgrade NUMERIC(10,5),
    rawgrademax NUMERIC(10,5) NOT NULL DEFAULT 100,
    rawgrademin NUMERIC(10,5) NOT NULL DEFAULT 0,
    finalgrade NUMERIC(10,5)
);
CREATE INDEX mdl_gradgradhist_act_ix ON mdl_grade_grades_history (action);
CREATE INDEX mdl_gradgradhist_tim_ix ON mdl_grade_grades_history (timemodified);
CREATE INDEX mdl_gradgradhist_useitetim_ix ON mdl_grade_grades_history (userid, itemid, timemodified);
CREATE INDEX mdl_gradgradhist_old_ix ON mdl_grade_grades_history (oldid);
CREATE INDEX mdl_gradgradhist_ite_ix ON mdl_grade_grades_history (itemid);
CREATE INDEX mdl_gradgradhist_use_ix ON mdl_grade_grades_history (userid);

-- The standard log store (admin/tool/log/store/standard/db/install.xml).
CREATE TABLE mdl_logstore_standard_log (
    id BIGSERIAL PRIMARY KEY,
    eventname VARCHAR(255) NOT NULL DEFAULT '',
    component VARCHAR(100) NOT NULL DEFAULT '',
    action VARCHAR(100) NOT NULL DEFAULT '',
    target VARCHAR(100) NOT NULL DEFAULT '',
    objecttable VARCHAR(50),
    objectid BIGINT,
    crud VARCHAR(1) NOT NULL DEFAULT '',
    edulevel SMALLINT NOT NULL DEFAULT 0,
    contextid BIGINT NOT NULL DEFAULT 0,
    contextlevel BIGINT NOT NULL DEFAULT 0,
    contextinstanceid BIGINT NOT NULL DEFAULT 0,
    userid BIGINT NOT NULL DEFAULT 0,
    courseid BIGINT,
    relateduserid BIGINT,
    anonymous SMALLINT NOT NULL DEFAULT 0,
    other TEXT,
    timecreated BIGINT NOT NULL DEFAULT 0,
    origin VARCHAR(10),
    ip VARCHAR(45),
    realuserid BIGINT
);
CREATE INDEX mdl_logsstanlog_tim_ix ON mdl_logstore_standard_log (timecreated);
CREATE INDEX mdl_logsstanlog_couanotim_ix ON mdl_logstore_standard_log (courseid, anonymous, timecreated);
CREATE INDEX mdl_logsstanlog_useconconcr_ix ON mdl_logstore_standard_log (userid, contextlevel, contextinstanceid, crud, edulevel, timecreated);
CREATE INDEX mdl_logsstanlog_con_ix ON mdl_logstore_standard_log (contextid);

CREATE TABLE mdl_user_info_field (
    id BIGSERIAL PRIMARY KEY,
    shortname VARCHAR(255) NOT NULL DEFAULT 'shortname',
    name TEXT NOT NULL,
    datatype VARCHAR(255) NOT NULL DEFAULT ''
);

CREATE TABLE mdl_user_info_data (
    id BIGSERIAL PRIMARY KEY,
    userid BIGINT NOT NULL DEFAULT 0,
    fieldid BIGINT NOT NULL DEFAULT 0,
    data TEXT NOT NULL,
    dataformat SMALLINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX mdl_userinfodata_usefie_uix ON mdl_user_info_data (userid, fieldid);
