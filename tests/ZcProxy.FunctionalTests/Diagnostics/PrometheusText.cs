using System.Diagnostics;
using System.Text.Json;

namespace ZcProxy.Tests.Diagnostics;

/// <summary>
/// Checks a /metrics answer with a real Prometheus text parser: the prometheus-client Python package's
/// <c>text_string_to_metric_families</c> (Debian's python3-prometheus-client, for Debian's /usr/bin/python3; .ci/run
/// installs it), plus what that lax parser lets through (check_metrics.py: a family declared twice, samples outside
/// their family, histograms that do not add up). Returns the families: name → (type, samples).
/// </summary>
internal static class PrometheusText
{
    private const string Python = "/usr/bin/python3";

    public sealed record Sample(string Name, Dictionary<string, string> Labels, double Value);

    public sealed record Family(string Type, List<Sample> Samples);

    public static async Task<Dictionary<string, Family>> ParseAsync(string exposition)
    {
        Assert.True(File.Exists(Python), $"{Python} is missing: apt-get install python3 python3-prometheus-client");
        var script = Path.Combine(AppContext.BaseDirectory, "Diagnostics", "check_metrics.py");
        var info = new ProcessStartInfo(Python) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(script);
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.StandardInput.WriteAsync(exposition);
        process.StandardInput.Close();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        var output = await stdout;
        var errors = await stderr;
        Assert.False(errors.Contains("No module named 'prometheus_client'", StringComparison.Ordinal),
            "the prometheus-client parser is missing: apt-get install python3-prometheus-client");
        Assert.True(process.ExitCode == 0, $"/metrics does not pass the Prometheus text parser:\n{output}{errors}");

        var families = new Dictionary<string, Family>(StringComparer.Ordinal);
        using var doc = JsonDocument.Parse(output);
        foreach (var f in doc.RootElement.EnumerateObject())
        {
            var samples = f.Value.GetProperty("samples").EnumerateArray().Select(s => new Sample(
                s[0].GetString()!,
                s[1].EnumerateObject().ToDictionary(l => l.Name, l => l.Value.GetString()!),
                s[2].ValueKind == JsonValueKind.Number ? s[2].GetDouble() : double.NaN)).ToList();
            families[f.Name] = new Family(f.Value.GetProperty("type").GetString()!, samples);
        }
        return families;
    }
}
