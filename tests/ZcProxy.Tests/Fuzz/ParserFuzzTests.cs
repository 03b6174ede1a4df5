using ZcProxy.Fuzz;

namespace ZcProxy.Tests.Fuzz;

/// <summary>
/// A short run of tests/ZcProxy.Fuzz's mutation loop over each network-facing parser (the long runs are described in
/// tests/ZcProxy.Fuzz/README.md). The seed differs per run, so the suite keeps exploring; a failure names the seed
/// and the input so it can be replayed.
/// </summary>
public sealed class ParserFuzzTests
{
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(2);

    public static TheoryData<string> Targets => ["response-head", "chunked-body"];

    [Theory]
    [MemberData(nameof(Targets))]
    public void ShortMutationRun_KeepsEveryInvariant(string name)
    {
        IFuzzTarget target = name == "response-head" ? new ResponseHeadTarget() : new ChunkedBodyTarget();
        int seed = Random.Shared.Next();
        var log = new StringWriter();
        var report = new MutationLoop(target, seed, findingsDirectory: null, log).Run(50_000, Budget, MutationLoop.DefaultHangTimeout, stopAtFirstFinding: true);

        Assert.True(report.Findings == 0,
            $"seed {seed}: {report.FirstFinding}\n{log}\nreplay: dotnet run -c Release --project tests/ZcProxy.Fuzz -- run --target {name} --seed {seed}");
        Assert.True(report.Inputs > 200, $"only {report.Inputs} inputs ran");
    }

    [Fact]
    public void MutationLoop_ReportsAnUndocumentedException()
    {
        var report = new MutationLoop(new ThrowsOnDelete(), seed: 1, findingsDirectory: null, TextWriter.Null)
            .Run(100_000, TimeSpan.FromSeconds(30), MutationLoop.DefaultHangTimeout, stopAtFirstFinding: true);

        Assert.Equal(1, report.Findings);
        Assert.StartsWith("IndexOutOfRangeException", report.FirstFinding);
    }

    /// <summary>A "parser" that indexes past the end when its input lost a byte: the loop's mutations must get there.</summary>
    private sealed class ThrowsOnDelete : IFuzzTarget
    {
        public string Name => "throws";
        public IReadOnlyList<byte[]> Tokens { get; } = ["x"u8.ToArray()];
        public IReadOnlyList<byte[]> Seeds(Random random) => ["0123456789"u8.ToArray()];

        public void Run(ReadOnlySpan<byte> input)
        {
            var fixedLength = new byte[10];
            for (int i = 0; i < input.Length; i++) fixedLength[i] = input[i];
            if (input.Length < 10) _ = fixedLength[input.Length + 10];
        }
    }
}
