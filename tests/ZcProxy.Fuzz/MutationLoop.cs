using System.Diagnostics;
using System.Security.Cryptography;

namespace ZcProxy.Fuzz;

/// <summary>
/// The fuzzer of our own: every seed as is, then mutated seeds, one input at a time, until a count or a time is
/// reached. A finding (broken invariant or undocumented exception) is written to the findings folder as the raw input
/// plus a .txt with the message, so `repro` can replay it. A hang (one input running past the hang timeout) is
/// written the same way by a watchdog thread, which then ends the process: a stuck parser cannot be interrupted.
/// </summary>
internal sealed class MutationLoop(IFuzzTarget target, int seed, string? findingsDirectory, TextWriter log)
{
    public static readonly TimeSpan DefaultHangTimeout = TimeSpan.FromSeconds(10);

    public sealed record Report(string Target, long Inputs, TimeSpan Elapsed, int Findings, TimeSpan SlowestInput, string? FirstFinding)
    {
        public override string ToString() =>
            $"{Target}: {Inputs:N0} inputs in {Elapsed.TotalSeconds:F1} s ({Inputs / Math.Max(Elapsed.TotalSeconds, 0.001):N0}/s), " +
            $"{Findings} findings, slowest input {SlowestInput.TotalMilliseconds:F1} ms";
    }

    private byte[] _current = [];
    private long _currentStarted; // Stopwatch timestamp; 0 between inputs

    public Report Run(long maxInputs, TimeSpan maxTime, TimeSpan hangTimeout, bool stopAtFirstFinding = false)
    {
        var random = new Random(seed);
        var seeds = target.Seeds(random);
        var mutator = new Mutator(random, seeds, target.Tokens);
        using var stop = new CancellationTokenSource();
        var watchdog = new Thread(() => Watch(hangTimeout, stop.Token)) { IsBackground = true, Name = "fuzz watchdog" };
        watchdog.Start();

        var clock = Stopwatch.StartNew();
        long inputs = 0;
        int findings = 0;
        string? first = null;
        var slowest = TimeSpan.Zero;
        var progressAt = TimeSpan.FromSeconds(30);
        try
        {
            while (inputs < maxInputs && clock.Elapsed < maxTime)
            {
                var input = inputs < seeds.Count ? seeds[(int)inputs] : mutator.Next();
                Volatile.Write(ref _current, input);
                long started = Stopwatch.GetTimestamp();
                Volatile.Write(ref _currentStarted, started);
                string? finding = null;
                try { target.Run(input); }
                catch (Exception e) { finding = e is FuzzFinding ? e.Message : $"{e.GetType().Name}: {e}"; }
                Volatile.Write(ref _currentStarted, 0);
                var took = Stopwatch.GetElapsedTime(started);
                if (took > slowest) slowest = took;
                inputs++;
                if (finding is not null)
                {
                    findings++;
                    first ??= finding;
                    Save(input, finding, "finding");
                    if (stopAtFirstFinding) break;
                }
                if (clock.Elapsed > progressAt)
                {
                    log.WriteLine($"  {target.Name}: {inputs:N0} inputs, {findings} findings, {clock.Elapsed.TotalSeconds:F0} s");
                    progressAt += TimeSpan.FromSeconds(30);
                }
            }
        }
        finally
        {
            stop.Cancel();
            // The watchdog must be done with the token source before `using` disposes it: under load the thread may
            // start only after a short run has ended, and a disposed source's WaitHandle throws (crashing the test host).
            watchdog.Join();
        }
        return new Report(target.Name, inputs, clock.Elapsed, findings, slowest, first);
    }

    private void Watch(TimeSpan hangTimeout, CancellationToken stop)
    {
        while (!stop.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(500)))
        {
            long started = Volatile.Read(ref _currentStarted);
            if (started == 0 || Stopwatch.GetElapsedTime(started) < hangTimeout) continue;
            var path = Save(Volatile.Read(ref _current), $"hang: one input ran longer than {hangTimeout.TotalSeconds} s", "hang");
            log.WriteLine($"HANG in {target.Name}; input saved to {path ?? "(no findings folder)"}");
            log.Flush();
            Environment.Exit(3);
        }
    }

    private string? Save(byte[] input, string message, string kind)
    {
        log.WriteLine($"{kind.ToUpperInvariant()} in {target.Name}: {message}");
        if (findingsDirectory is null) return null;
        Directory.CreateDirectory(findingsDirectory);
        var name = $"{target.Name}-{kind}-{Convert.ToHexStringLower(SHA256.HashData(input))[..16]}";
        var path = Path.Combine(findingsDirectory, name + ".bin");
        File.WriteAllBytes(path, input);
        File.WriteAllText(Path.Combine(findingsDirectory, name + ".txt"), message + "\n");
        return path;
    }
}
