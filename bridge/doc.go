// Package bridge is the core of cvbridge: everything between an LMS adapter
// and Coachview that knows nothing of any particular LMS.
//
// Its sub-packages each own one noun of the domain:
//
//   - result: a completion as an adapter yields it, and the CoachviewResultaat
//     message rendered and checked from it;
//   - sign: the X-WebHook-Signature HMAC;
//   - outbox: the persistent store of results, attempts, cursors and target state;
//   - delivery: the per-target dispatcher that posts results and handles Coachview's answers;
//   - source: the contract adapters implement;
//   - intake: runs sources on their schedules and commits what they yield to the outbox;
//   - config: cvbridge.yaml and the per-connection LMS files;
//   - simulator: a local stand-in for Coachview's results endpoint;
//   - clock: injectable time.
//
// Dependencies point inward: adapters and cmd import bridge; bridge never
// imports an adapter.
package bridge
