// Reads a JSON array of simulations (iam-simulate's Simulation shape) on
// stdin and prints, for each, its overall result and the context keys the
// simulator left out (a case is only sound when it used them all), or its
// validation errors.
import { runSimulation } from '@cloud-copilot/iam-simulate'

let input = ''
for await (const chunk of process.stdin) input += chunk
const results = []
for (const simulation of JSON.parse(input)) {
  const response = await runSimulation(simulation, {})
  if (response.resultType === 'error') {
    results.push({ result: 'Error', errors: response.errors })
  } else {
    const ignored =
      response.resultType === 'single'
        ? response.result.ignoredContextKeys ?? []
        : response.results.flatMap((r) => r.ignoredContextKeys ?? [])
    results.push({ result: response.overallResult, ignoredContextKeys: ignored })
  }
}
process.stdout.write(JSON.stringify(results))
