namespace ZcProxy.Core.Upstream;

internal enum ResponseHeadParseStatus { Incomplete, Complete, Invalid }

/// <summary>Outcome of parsing the bytes of a head received so far. Malformed input is a result, not an exception.</summary>
internal readonly record struct ResponseHeadParseResult(ResponseHeadParseStatus Status, ResponseHead? Head, string? Error)
{
    public static readonly ResponseHeadParseResult Incomplete = new(ResponseHeadParseStatus.Incomplete, null, null);
    public static ResponseHeadParseResult Complete(ResponseHead head) => new(ResponseHeadParseStatus.Complete, head, null);
    public static ResponseHeadParseResult Invalid(string error) => new(ResponseHeadParseStatus.Invalid, null, error);
}
