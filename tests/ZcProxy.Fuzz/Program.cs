using System.Globalization;
using SharpFuzz;
using ZcProxy.Fuzz;

// Usage (see README.md):
//   run       [--target T|all] [--inputs N] [--seconds S] [--seed N] [--findings DIR]   our own mutation loop
//   repro     --target T FILE...                                                        replay saved inputs
//   seeds     --target T DIR                                                            write the seeds (AFL's -i)
//   afl       --target T                                                                SharpFuzz entry for afl-fuzz
//   libfuzzer --target T                                                                SharpFuzz entry for libfuzzer-dotnet
IFuzzTarget[] targets = [new ResponseHeadTarget(), new ChunkedBodyTarget()];
var command = args.Length > 0 ? args[0] : "run";
string Option(string name, string fallback) => Array.IndexOf(args, name) is int i and >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
var targetName = Option("--target", "all");
var chosen = targets.Where(t => targetName == "all" || t.Name == targetName).ToArray();
if (chosen.Length == 0)
{
    Console.Error.WriteLine($"unknown target '{targetName}'; targets: {string.Join(", ", targets.Select(t => t.Name))}, all");
    return 2;
}
var positional = args.Skip(1).Where((a, i) => !a.StartsWith("--", StringComparison.Ordinal) && (i == 0 || !args[i].StartsWith("--", StringComparison.Ordinal))).ToArray();

switch (command)
{
    case "run":
    {
        long inputs = long.Parse(Option("--inputs", "1000000"), CultureInfo.InvariantCulture);
        var seconds = double.Parse(Option("--seconds", "86400"), CultureInfo.InvariantCulture);
        int seed = int.Parse(Option("--seed", "1"), CultureInfo.InvariantCulture);
        var findings = Option("--findings", "fuzz-findings");
        int found = 0;
        foreach (var target in chosen)
        {
            var report = new MutationLoop(target, seed, findings, Console.Out)
                .Run(inputs, TimeSpan.FromSeconds(seconds), MutationLoop.DefaultHangTimeout);
            Console.WriteLine(report);
            found += report.Findings;
        }
        return found == 0 ? 0 : 1;
    }
    case "repro":
    {
        int failed = 0;
        foreach (var file in positional)
        {
            try { chosen[0].Run(File.ReadAllBytes(file)); Console.WriteLine($"{file}: no finding"); }
            catch (Exception e) { failed++; Console.WriteLine($"{file}: {(e is FuzzFinding ? e.Message : e.ToString())}"); }
        }
        return failed == 0 ? 0 : 1;
    }
    case "seeds":
    {
        var dir = positional.FirstOrDefault() ?? "fuzz-seeds";
        Directory.CreateDirectory(dir);
        var seeds = chosen[0].Seeds(new Random(1));
        for (int i = 0; i < seeds.Count; i++) File.WriteAllBytes(Path.Combine(dir, $"seed-{i:D3}.bin"), seeds[i]);
        Console.WriteLine($"{seeds.Count} seeds in {dir}");
        return 0;
    }
    case "afl":
        Fuzzer.OutOfProcess.Run(stream =>
        {
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            chosen[0].Run(copy.ToArray());
        });
        return 0;
    case "libfuzzer":
        Fuzzer.LibFuzzer.Run(span => chosen[0].Run(span));
        return 0;
    default:
        Console.Error.WriteLine($"unknown command '{command}': run, repro, seeds, afl, libfuzzer");
        return 2;
}
