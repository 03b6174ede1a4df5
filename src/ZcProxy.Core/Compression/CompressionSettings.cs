using System.Collections.Frozen;
using Microsoft.AspNetCore.ResponseCompression;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Compression;

/// <summary>
/// A route's compression settings, from its Metadata: <c>"Compression": "on"</c> (nginx <c>gzip on</c> + brotli) and
/// optionally <c>"CompressionTypes"</c>, the media types to compress (nginx <c>gzip_types</c>), separated by spaces or commas.
/// </summary>
internal sealed class CompressionSettings
{
    public const string MetadataKey = "Compression";
    public const string TypesMetadataKey = "CompressionTypes";

    /// <summary>Bodies shorter than this are sent as they are: gzip's and brotli's framing would make them longer (nginx gzip_min_length is 20; 256 is where compression starts to pay).</summary>
    public const long MinLength = 256;

    /// <summary>ASP.NET Core's compressible types (text/*, JSON, XML, JavaScript, wasm) and SVG.</summary>
    public static readonly FrozenSet<string> DefaultTypes =
        ResponseCompressionDefaults.MimeTypes.Append("image/svg+xml").Append("text/javascript").ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    public static readonly CompressionSettings Default = new(DefaultTypes);

    private CompressionSettings(FrozenSet<string> types) => Types = types;

    public FrozenSet<string> Types { get; }

    /// <summary>The settings of a route with compression on; null when it is off (or not set).</summary>
    public static CompressionSettings? For(IReadOnlyDictionary<string, string>? metadata)
    {
        if (metadata is null || !IsOn(metadata)) return null;
        return metadata.TryGetValue(TypesMetadataKey, out var types) && ParseTypes(types) is { Count: > 0 } list
            ? new CompressionSettings(list.ToFrozenSet(StringComparer.OrdinalIgnoreCase))
            : Default;
    }

    /// <summary>The route's Metadata turns compression on.</summary>
    public static bool IsOn(IReadOnlyDictionary<string, string>? metadata)
        => metadata is not null && metadata.TryGetValue(MetadataKey, out var on) && ConfigValidator.IsOn(on);

    public static List<string> ParseTypes(string text) => [.. text.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
}
