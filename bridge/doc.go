// Package bridge is the core of cvbridge: everything between an LMS adapter
// and Coachview that knows nothing of any particular LMS.
//
// Its sub-packages each own one noun of the domain:
//
//   - result: a completion as an adapter yields it, and the CoachviewResultaat
//     message rendered and checked from it (no cgo); result/xsdschema: the
//     XSD validation, with libxml2 (cgo); the helpers their tests share
//     (internal/resulttest);
//   - source: the contract adapters implement, with their declared
//     capabilities and the one person key;
//   - strictyaml: strict YAML decoding that names file, line and key, for
//     config and for the adapters' settings (the registry decodes them);
//   - sign: the X-WebHook-Signature HMAC;
//   - outbox: the persistent store of results, attempts, cursors and target
//     state, with its backends sqlite and postgres, the SQL they share
//     (internal/sqlcore, internal/sqlinbound), the contract's conformance
//     suite (outboxtest) and the move of a whole outbox from SQLite to
//     PostgreSQL (outboxcopy);
//   - delivery: the per-target dispatcher that posts results and handles
//     Coachview's answers;
//   - intake: runs sources on their schedules and commits what they yield to
//     the outbox;
//   - inbound: enrolments from Coachview, carried out through the LMS
//     connections' enrollers; its storage contract (inboundstore), the
//     enrolment link (link), its OAuth server (oauth), the webhook receiver
//     (webhook), the public HTTP server (listen) and the inbound tests'
//     doubles (internal/fakes);
//   - config: cvbridge.yaml and the per-connection LMS files;
//   - daemon: assembles a running bridge from its configuration;
//   - admin: health, readiness, circuits, metrics endpoint and the HTML
//     dashboard;
//   - loginlimit: password attempts limited per client address, for the
//     dashboard's and the consent page's sign-in;
//   - metrics: the Prometheus collectors;
//   - simulator: a local stand-in for Coachview's results endpoint;
//   - dsn: the rules for database connection strings (verified TLS to
//     another machine, errors that never quote a DSN);
//   - clock: injectable time;
//   - testdb: a fresh PostgreSQL or MariaDB database per test;
//   - browsertest: a headless Chromium for tests that need a real browser.
//
// Dependencies point inward: adapters and cmd import bridge; bridge never
// imports an adapter (it reads secrets with the adapters' kit, which
// imports nothing of the core but the contract). An adapter depends on
// source, result, strictyaml (through the registry), clock and dsn only.
package bridge
