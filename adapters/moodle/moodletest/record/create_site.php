<?php
// Creates the Moodle data the cvbridge web-service fixtures are recorded
// from, through Moodle's own APIs, on a freshly installed Moodle 4.1 … 5.x.
// This script is cvbridge's, not Moodle's. Run it from Moodle's directory:
//
//     php /path/to/cvbridge/adapters/moodle/moodletest/record/create_site.php > site.json
//
// It prints a JSON object with the site's release, build and version, a
// web-service token per capability set, and the ids of the users and
// courses it made; record_test.go (build tag moodlerecord) reads it.

define('CLI_SCRIPT', true);
require(getcwd() . '/config.php');
require_once($CFG->dirroot . '/course/lib.php');
require_once($CFG->dirroot . '/user/lib.php');
require_once($CFG->dirroot . '/group/lib.php');
require_once($CFG->dirroot . '/webservice/lib.php');
require_once($CFG->libdir . '/completionlib.php');
require_once($CFG->libdir . '/gradelib.php');
require_once($CFG->libdir . '/externallib.php');
require_once($CFG->dirroot . '/completion/criteria/completion_criteria_self.php');
require_once($CFG->dirroot . '/completion/criteria/completion_criteria_role.php');

\core\session\manager::set_user(get_admin());
$sys = context_system::instance();

set_config('enablewebservices', 1);
set_config('webserviceprotocols', 'rest');
set_config('enablecompletion', 1);

// The capabilities the bridge's documentation lists, all of them.
$full = [
    'webservice/rest:use',
    'moodle/user:viewdetails', 'moodle/user:viewalldetails', 'moodle/course:useremail',
    'moodle/user:create', 'moodle/user:update',
    'moodle/course:view', 'moodle/course:update',
    'enrol/manual:enrol', 'enrol/manual:unenrol', 'moodle/role:assign',
    'moodle/course:viewparticipants', 'moodle/course:enrolreview', 'moodle/site:accessallgroups',
    'report/completion:view',
    'gradereport/user:view', 'moodle/grade:viewall', 'moodle/grade:viewhidden',
];
// One integration user per token; each lacks one thing.
$tokens = [
    'full' => [$full, true],
    'noreview' => [array_diff($full, ['moodle/course:enrolreview']), true],
    'nogroups' => [array_diff($full, ['moodle/site:accessallgroups']), true],
    'nohidden' => [array_diff($full, ['moodle/grade:viewhidden']), true],
    'nodetails' => [array_diff($full, ['moodle/user:viewalldetails']), true],
    'noassign' => [$full, false], // its role may not assign the Student role
];

$functions = ['core_webservice_get_site_info', 'core_user_get_users_by_field', 'core_user_create_users',
    'core_user_update_users', 'core_course_get_courses_by_field', 'enrol_manual_enrol_users',
    'enrol_manual_unenrol_users', 'core_enrol_get_enrolled_users',
    'core_completion_get_course_completion_status', 'gradereport_user_get_grade_items'];
$wsman = new webservice();
$serviceid = $wsman->add_external_service((object)['name' => 'cvbridge', 'shortname' => 'cvbridge',
    'enabled' => 1, 'restrictedusers' => 0, 'downloadfiles' => 0, 'uploadfiles' => 0]);
foreach ($functions as $f) {
    $wsman->add_external_function_to_service($f, $serviceid);
}
$service = $DB->get_record('external_services', ['id' => $serviceid]);
$student = $DB->get_field('role', 'id', ['shortname' => 'student']);

$out = ['tokens' => [], 'users' => [], 'courses' => []];
foreach ($tokens as $name => [$caps, $mayassign]) {
    $user = user_create_user(['username' => 'cvbridge-' . $name, 'firstname' => 'Coachview', 'lastname' => 'Bridge ' . $name,
        'email' => "cvbridge-$name@example.nl", 'password' => 'Bridge-1234', 'auth' => 'manual',
        'confirmed' => 1, 'mnethostid' => $CFG->mnet_localhost_id]);
    $roleid = create_role("cvbridge $name", "cvbridge$name", 'cvbridge web services');
    set_role_contextlevels($roleid, [CONTEXT_SYSTEM]);
    foreach ($caps as $cap) {
        assign_capability($cap, CAP_ALLOW, $roleid, $sys->id, true);
    }
    if ($mayassign) {
        core_role_set_assign_allowed($roleid, $student);
    }
    role_assign($roleid, $user, $sys->id);
    $out['tokens'][$name] = \core_external\util::generate_token(EXTERNAL_TOKEN_PERMANENT, $service, $user, $sys);
    $out['users']['cvbridge-' . $name] = (int)$user;
}
accesslib_clear_all_caches(true);

$learners = [
    'anna' => ['Anna', 'Jansen', 'P100'],
    'bram' => ['Bram', 'de Vries', 'P101'],
    'cees' => ['Cees', 'Bakker', 'P102'],
];
foreach ($learners as $username => [$first, $last, $idnumber]) {
    $out['users'][$username] = (int)user_create_user(['username' => $username, 'firstname' => $first, 'lastname' => $last,
        'email' => "$username@example.nl", 'idnumber' => $idnumber, 'password' => 'Learner-1234', 'auth' => 'manual',
        'confirmed' => 1, 'mnethostid' => $CFG->mnet_localhost_id]);
}

// Times of the criteria: 2025-03-03 10:00, 2025-03-05 14:00, 2025-04-01 09:00, 2025-04-10 16:00 UTC.
$t = ['a' => 1741003200, 'b' => 1741183200, 'c' => 1743498000, 'd' => 1744300800];

/**
 * Makes a course with completion by self and role criteria aggregated by
 * $aggregation, and a manual grade item with maximum $max.
 */
function cvbridge_course(string $short, string $full, string $idnumber, int $aggregation, float $max, array $extra = []): array {
    global $DB;
    $course = create_course((object)array_merge(['category' => 1, 'shortname' => $short, 'fullname' => $full,
        'idnumber' => $idnumber, 'enablecompletion' => 1], $extra));
    $self = new completion_criteria_self();
    $data = (object)['id' => $course->id, 'criteria_self' => 1];
    $self->update_config($data);
    $manager = $DB->get_field('role', 'id', ['shortname' => 'editingteacher']);
    $role = new completion_criteria_role();
    $data = (object)['id' => $course->id, 'criteria_role' => [$manager => 1]];
    $role->update_config($data);
    $DB->delete_records('course_completion_aggr_methd', ['course' => $course->id]);
    $DB->insert_record('course_completion_aggr_methd', (object)['course' => $course->id, 'criteriatype' => null,
        'method' => $aggregation, 'value' => null]);
    $item = new grade_item(['courseid' => $course->id, 'itemtype' => 'manual', 'itemname' => 'Examen',
        'grademax' => $max, 'grademin' => 0, 'gradetype' => GRADE_TYPE_VALUE]);
    $item->insert();
    return [$course, $item];
}

/** Enrols the user as a student with the manual method. */
function cvbridge_enrol(stdClass $course, int $userid): void {
    global $DB;
    $instance = $DB->get_record('enrol', ['courseid' => $course->id, 'enrol' => 'manual'], '*', MUST_EXIST);
    $student = $DB->get_field('role', 'id', ['shortname' => 'student']);
    enrol_get_plugin('manual')->enrol_user($instance, $userid, $student, 1735689600);
}

/** Marks one criterion of the course complete for the user at $time. */
function cvbridge_criterion(stdClass $course, int $userid, int $type, int $time): void {
    global $DB;
    $crit = $DB->get_record('course_completion_criteria', ['course' => $course->id, 'criteriatype' => $type], '*', MUST_EXIST);
    $cc = new completion_criteria_completion(['userid' => $userid, 'course' => $course->id, 'criteriaid' => $crit->id]);
    $cc->mark_complete($time);
}

/** Runs Moodle's completion aggregation, as cron does. */
function cvbridge_aggregate(): void {
    global $DB;
    $DB->set_field_select('course_completions', 'reaggregate', 1, 'timecompleted IS NULL');
    aggregate_completions(0);
}

/** Gives the user a grade for the course's manual item and regrades. */
function cvbridge_grade(stdClass $course, grade_item $item, int $userid, float $grade): void {
    $item->update_final_grade($userid, $grade, 'cvbridge');
    grade_regrade_final_grades($course->id);
}

$anna = $out['users']['anna'];
$bram = $out['users']['bram'];
$cees = $out['users']['cees'];

// "All criteria": complete at the last criterion, graded 50/100.
[$vca, $vcaitem] = cvbridge_course('vca', 'Veiligheid VCA', 'E-VCA', COMPLETION_AGGREGATION_ALL, 100);
cvbridge_enrol($vca, $anna);
cvbridge_enrol($vca, $bram);
cvbridge_criterion($vca, $anna, COMPLETION_CRITERIA_TYPE_SELF, $t['a']);
cvbridge_criterion($vca, $anna, COMPLETION_CRITERIA_TYPE_ROLE, $t['b']);
cvbridge_aggregate();
cvbridge_grade($vca, $vcaitem, $anna, 50);

// "Any criterion": complete at the first; the second comes later.
[$xl, $xlitem] = cvbridge_course('excel', 'Excel gevorderd', 'E-XL', COMPLETION_AGGREGATION_ANY, 10);
cvbridge_enrol($xl, $anna);
cvbridge_criterion($xl, $anna, COMPLETION_CRITERIA_TYPE_SELF, $t['c']);
cvbridge_aggregate();
cvbridge_criterion($xl, $anna, COMPLETION_CRITERIA_TYPE_ROLE, $t['d']);
cvbridge_grade($xl, $xlitem, $anna, 7.5);

// Separate groups, forced: members only with moodle/site:accessallgroups.
[$grp, $grpitem] = cvbridge_course('bhv', 'BHV groepen', 'E-GRP', COMPLETION_AGGREGATION_ALL, 10,
    ['groupmode' => SEPARATEGROUPS, 'groupmodeforce' => 1]);
cvbridge_enrol($grp, $anna);
cvbridge_enrol($grp, $cees);
$group = groups_create_group((object)['courseid' => $grp->id, 'name' => 'Groep A']);
groups_add_member($group, $anna);
groups_add_member($group, $cees);
cvbridge_criterion($grp, $anna, COMPLETION_CRITERIA_TYPE_SELF, $t['a']);
cvbridge_criterion($grp, $anna, COMPLETION_CRITERIA_TYPE_ROLE, $t['b']);
cvbridge_aggregate();
cvbridge_grade($grp, $grpitem, $anna, 9);

// A hidden course total: left out without moodle/grade:viewhidden.
[$hid, $hiditem] = cvbridge_course('hidden', 'Verborgen totaal', 'E-HID', COMPLETION_AGGREGATION_ALL, 10);
cvbridge_enrol($hid, $anna);
cvbridge_criterion($hid, $anna, COMPLETION_CRITERIA_TYPE_SELF, $t['a']);
cvbridge_criterion($hid, $anna, COMPLETION_CRITERIA_TYPE_ROLE, $t['b']);
cvbridge_aggregate();
cvbridge_grade($hid, $hiditem, $anna, 8.8);
grade_item::fetch_course_item($hid->id)->set_hidden(1);

// Marked complete by an administrator: no criterion is complete.
[$man, $manitem] = cvbridge_course('manual', 'Handmatig afgerond', 'E-MAN', COMPLETION_AGGREGATION_ALL, 10);
cvbridge_enrol($man, $anna);
(new completion_completion(['userid' => $anna, 'course' => $man->id]))->mark_complete($t['c']);

foreach (['vca' => $vca, 'excel' => $xl, 'bhv' => $grp, 'hidden' => $hid, 'manual' => $man] as $name => $c) {
    $out['courses'][$name] = (int)$c->id;
}
$out['release'] = $CFG->release;
$out['version'] = (string)$CFG->version;
$out['wwwroot'] = $CFG->wwwroot;
echo json_encode($out, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES), "\n";
