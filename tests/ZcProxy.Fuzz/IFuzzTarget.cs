namespace ZcProxy.Fuzz;

/// <summary>
/// One parser under fuzzing: seeds to mutate, tokens worth splicing in, and a run that feeds one input and checks the
/// parser's invariants. A run throws <see cref="FuzzFinding"/> when an invariant breaks; any other exception escaping
/// it is a finding too (the parser threw something it does not document).
/// </summary>
internal interface IFuzzTarget
{
    string Name { get; }

    /// <summary>Valid inputs the mutations start from (a few fixed ones; the rest generated from <paramref name="random"/>).</summary>
    IReadOnlyList<byte[]> Seeds(Random random);

    /// <summary>Byte strings that have broken parsers of this kind before (line endings, separators, big numbers...).</summary>
    IReadOnlyList<byte[]> Tokens { get; }

    void Run(ReadOnlySpan<byte> input);
}

/// <summary>A broken invariant: what was expected and what the parser did.</summary>
internal sealed class FuzzFinding(string message) : Exception(message);
