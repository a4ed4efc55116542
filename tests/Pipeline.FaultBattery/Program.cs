using System.CommandLine;
using System.Globalization;
using System.Text;
using Pipeline.FaultBattery;

// Every scenario bounds its traffic in count and time and talks only to loopback.
var shortRun = new Option<bool>("--short") { Description = "Small counts and a few faults (what CI runs)." };
var only = new Option<string[]>("--scenario") { Description = $"Run only these scenarios: {string.Join(", ", FaultScenarios.All.Keys)}.", AllowMultipleArgumentsPerToken = true };
var output = new Option<string?>("--output") { Description = "Also write the table (Markdown) to this file." };
var root = new RootCommand("Fault battery: kills, bounces, poisons and floods the pipeline (separate processes on loopback) and checks every feed against the reference model.")
{
    shortRun, only, output,
};
root.SetAction(async (parse, cancellationToken) =>
{
    var size = new BatterySize(parse.GetValue(shortRun));
    var selected = parse.GetValue(only) is { Length: > 0 } names ? names : [.. FaultScenarios.All.Keys];
    var results = new List<ScenarioResult>();
    foreach (var name in selected)
    {
        if (!FaultScenarios.All.TryGetValue(name, out var scenario))
        {
            Console.Error.WriteLine($"unknown scenario '{name}'; known: {string.Join(", ", FaultScenarios.All.Keys)}");
            return 2;
        }

        var started = DateTime.UtcNow;
        ScenarioResult result;
        try
        {
            result = await scenario(size, cancellationToken);
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException)
        {
            result = new ScenarioResult(name, "", 0, Verdict.Empty, "", 0, Passed: false, $"FAILED: {ex.Message}");
            Console.Error.WriteLine(ex);
        }

        Console.WriteLine($"[{name}] {ResultTable.Outcome(result)} in {(DateTime.UtcNow - started).TotalSeconds:0} s: {result.Notes}");
        results.Add(result);
    }

    var table = ResultTable.Markdown(results);
    Console.WriteLine();
    Console.WriteLine(table);
    if (parse.GetValue(output) is { } path)
    {
        await File.WriteAllTextAsync(path, table, cancellationToken);
    }

    return results.All(r => r.Passed || r.ReportedOnly is not null) ? 0 : 1;
});
return await root.Parse(args).InvokeAsync();

namespace Pipeline.FaultBattery
{
    public static class ResultTable
    {
        public static string Markdown(IEnumerable<ScenarioResult> results)
        {
            var table = new StringBuilder();
            table.AppendLine("| scenario | faults injected | records in | expected | delivered | lost | duplicated | reordered | unexpected | recovery | unplanned restarts | result | notes |");
            table.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|");
            foreach (var r in results)
            {
                var f = r.Feeds;
                table.AppendLine(CultureInfo.InvariantCulture, $"| {r.Scenario} | {r.Faults} | {r.RecordsIn} | {f.Expected} | {f.Delivered} | {f.Lost} | {f.Duplicated} | {f.Reordered} | {f.Unexpected} | {r.Recovery} | {r.UnexpectedRestarts} | {Outcome(r)} | {(r.ReportedOnly is null ? "" : $"Reported, not held: {r.ReportedOnly}. ")}{r.Notes.ReplaceLineEndings(" ").Replace('|', '/')} |");
            }

            return table.ToString();
        }

        public static string Outcome(ScenarioResult result) => (result.Passed, result.ReportedOnly) switch
        {
            (true, _) => "pass",
            (false, null) => "**FAIL**",
            (false, _) => "reported",
        };
    }
}
