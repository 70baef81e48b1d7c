-- The Moodle tables the moodle adapter reads, as Moodle 4.5 creates them on
-- MySQL/MariaDB (lib/db/install.xml, user/profile fields), reduced to the
-- columns that matter plus a few neighbours. Prefix mdl_.
CREATE TABLE mdl_user (
    id BIGINT(10) NOT NULL AUTO_INCREMENT,
    auth VARCHAR(20) NOT NULL DEFAULT 'manual',
    confirmed TINYINT(1) NOT NULL DEFAULT 0,
    deleted TINYINT(1) NOT NULL DEFAULT 0,
    suspended TINYINT(1) NOT NULL DEFAULT 0,
    mnethostid BIGINT(10) NOT NULL DEFAULT 0,
    username VARCHAR(100) NOT NULL DEFAULT '',
    idnumber VARCHAR(255) NOT NULL DEFAULT '',
    firstname VARCHAR(100) NOT NULL DEFAULT '',
    lastname VARCHAR(100) NOT NULL DEFAULT '',
    email VARCHAR(100) NOT NULL DEFAULT '',
    PRIMARY KEY (id),
    UNIQUE KEY mdl_user_mneuse_uix (mnethostid, username),
    KEY mdl_user_idn_ix (idnumber)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

CREATE TABLE mdl_course (
    id BIGINT(10) NOT NULL AUTO_INCREMENT,
    category BIGINT(10) NOT NULL DEFAULT 0,
    fullname VARCHAR(1333) NOT NULL DEFAULT '',
    shortname VARCHAR(255) NOT NULL DEFAULT '',
    idnumber VARCHAR(100) NOT NULL DEFAULT '',
    enablecompletion TINYINT(1) NOT NULL DEFAULT 0,
    PRIMARY KEY (id),
    KEY mdl_cour_idn_ix (idnumber)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

CREATE TABLE mdl_course_completions (
    id BIGINT(10) NOT NULL AUTO_INCREMENT,
    userid BIGINT(10) NOT NULL DEFAULT 0,
    course BIGINT(10) NOT NULL DEFAULT 0,
    timeenrolled BIGINT(10) NOT NULL DEFAULT 0,
    timestarted BIGINT(10) NOT NULL DEFAULT 0,
    timecompleted BIGINT(10) DEFAULT NULL,
    reaggregate BIGINT(10) NOT NULL DEFAULT 0,
    PRIMARY KEY (id),
    UNIQUE KEY mdl_courcomp_usecou_uix (userid, course),
    KEY mdl_courcomp_use_ix (userid),
    KEY mdl_courcomp_cou_ix (course),
    KEY mdl_courcomp_tim_ix (timecompleted)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

CREATE TABLE mdl_grade_items (
    id BIGINT(10) NOT NULL AUTO_INCREMENT,
    courseid BIGINT(10) DEFAULT NULL,
    categoryid BIGINT(10) DEFAULT NULL,
    itemname VARCHAR(255) DEFAULT NULL,
    itemtype VARCHAR(30) NOT NULL DEFAULT '',
    itemmodule VARCHAR(30) DEFAULT NULL,
    iteminstance BIGINT(10) DEFAULT NULL,
    itemnumber BIGINT(10) DEFAULT NULL,
    idnumber VARCHAR(255) DEFAULT NULL,
    calculation LONGTEXT,
    gradetype SMALLINT(4) NOT NULL DEFAULT 1,
    grademax DECIMAL(10,5) NOT NULL DEFAULT 100.00000,
    grademin DECIMAL(10,5) NOT NULL DEFAULT 0.00000,
    gradepass DECIMAL(10,5) NOT NULL DEFAULT 0.00000,
    needsupdate BIGINT(10) NOT NULL DEFAULT 0,
    PRIMARY KEY (id),
    KEY mdl_graditem_cou_ix (courseid),
    KEY mdl_graditem_itenee_ix (itemtype, needsupdate)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

CREATE TABLE mdl_grade_grades (
    id BIGINT(10) NOT NULL AUTO_INCREMENT,
    itemid BIGINT(10) NOT NULL,
    userid BIGINT(10) NOT NULL,
    rawgrade DECIMAL(10,5) DEFAULT NULL,
    rawgrademax DECIMAL(10,5) NOT NULL DEFAULT 100.00000,
    rawgrademin DECIMAL(10,5) NOT NULL DEFAULT 0.00000,
    finalgrade DECIMAL(10,5) DEFAULT NULL,
    hidden BIGINT(10) NOT NULL DEFAULT 0,
    overridden BIGINT(10) NOT NULL DEFAULT 0,
    timemodified BIGINT(10) DEFAULT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY mdl_gradgrad_useite_uix (userid, itemid),
    KEY mdl_gradgrad_ite_ix (itemid),
    KEY mdl_gradgrad_use_ix (userid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- One row per change of a grade (unless $CFG->disablegradehistory), with
-- its time: how database mode finds regraded course totals.
CREATE TABLE mdl_grade_grades_history (
    id BIGINT(10) NOT NULL AUTO_INCREMENT,
    action BIGINT(10) NOT NULL DEFAULT 0,
    oldid BIGINT(10) NOT NULL,
    source VARCHAR(255) DEFAULT NULL,
    timemodified BIGINT(10) DEFAULT NULL,
    loggeduser BIGINT(10) DEFAULT NULL,
    itemid BIGINT(10) NOT NULL,
    userid BIGINT(10) NOT NULL,
    rawgrade DECIMAL(10,5) DEFAULT NULL,
    rawgrademax DECIMAL(10,5) NOT NULL DEFAULT 100.00000,
    rawgrademin DECIMAL(10,5) NOT NULL DEFAULT 0.00000,
    finalgrade DECIMAL(10,5) DEFAULT NULL,
    PRIMARY KEY (id),
    KEY mdl_gradgradhist_act_ix (action),
    KEY mdl_gradgradhist_tim_ix (timemodified),
    KEY mdl_gradgradhist_useitetim_ix (userid, itemid, timemodified),
    KEY mdl_gradgradhist_old_ix (oldid),
    KEY mdl_gradgradhist_ite_ix (itemid),
    KEY mdl_gradgradhist_use_ix (userid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

-- The standard log store (admin/tool/log/store/standard/db/install.xml).
CREATE TABLE mdl_logstore_standard_log (
    id BIGINT(10) NOT NULL AUTO_INCREMENT,
    eventname VARCHAR(255) NOT NULL DEFAULT '',
    component VARCHAR(100) NOT NULL DEFAULT '',
    action VARCHAR(100) NOT NULL DEFAULT '',
    target VARCHAR(100) NOT NULL DEFAULT '',
    objecttable VARCHAR(50) DEFAULT NULL,
    objectid BIGINT(10) DEFAULT NULL,
    crud VARCHAR(1) NOT NULL DEFAULT '',
    edulevel TINYINT(1) NOT NULL DEFAULT 0,
    contextid BIGINT(10) NOT NULL DEFAULT 0,
    contextlevel BIGINT(10) NOT NULL DEFAULT 0,
    contextinstanceid BIGINT(10) NOT NULL DEFAULT 0,
    userid BIGINT(10) NOT NULL DEFAULT 0,
    courseid BIGINT(10) DEFAULT NULL,
    relateduserid BIGINT(10) DEFAULT NULL,
    anonymous TINYINT(1) NOT NULL DEFAULT 0,
    other LONGTEXT,
    timecreated BIGINT(10) NOT NULL DEFAULT 0,
    origin VARCHAR(10) DEFAULT NULL,
    ip VARCHAR(45) DEFAULT NULL,
    realuserid BIGINT(10) DEFAULT NULL,
    PRIMARY KEY (id),
    KEY mdl_logsstanlog_tim_ix (timecreated),
    KEY mdl_logsstanlog_couanotim_ix (courseid, anonymous, timecreated),
    KEY mdl_logsstanlog_useconconcr_ix (userid, contextlevel, contextinstanceid, crud, edulevel, timecreated),
    KEY mdl_logsstanlog_con_ix (contextid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

CREATE TABLE mdl_user_info_field (
    id BIGINT(10) NOT NULL AUTO_INCREMENT,
    shortname VARCHAR(255) NOT NULL DEFAULT 'shortname',
    name LONGTEXT NOT NULL,
    datatype VARCHAR(255) NOT NULL DEFAULT '',
    PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;

CREATE TABLE mdl_user_info_data (
    id BIGINT(10) NOT NULL AUTO_INCREMENT,
    userid BIGINT(10) NOT NULL DEFAULT 0,
    fieldid BIGINT(10) NOT NULL DEFAULT 0,
    data LONGTEXT NOT NULL,
    dataformat TINYINT(2) NOT NULL DEFAULT 0,
    PRIMARY KEY (id),
    UNIQUE KEY mdl_userinfodata_usefie_uix (userid, fieldid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC;
