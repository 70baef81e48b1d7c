package daemon

// CountVerdicts exposes countVerdicts to the package's tests.
var CountVerdicts = countVerdicts
