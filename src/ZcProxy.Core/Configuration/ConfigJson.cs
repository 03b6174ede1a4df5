using System.Text.Json;
using System.Text.Json.Serialization;

namespace ZcProxy.Core.Configuration;

/// <summary>
/// The one JSON reading setup for config files: comments and trailing commas allowed, property names
/// case-insensitive (as YARP's IConfiguration binding is), unknown keys rejected so typos are reported,
/// durations in "10s" form or TimeSpan strings, scalars accepted as metadata values ("Weight": 3).
/// </summary>
internal static class ConfigJson
{
    public static readonly JsonDocumentOptions DocumentOptions = new()
    {
        AllowTrailingCommas = true,
        CommentHandling = JsonCommentHandling.Skip,
    };

    public static readonly JsonSerializerOptions SerializerOptions = Create();

    /// <summary>
    /// The JSON path of the first null in <paramref name="element"/>, or null when there is none. A null is never a
    /// setting (leaving the key out is), and the readers after us (ours, YARP's validator) do not expect one inside an
    /// object they were given, so the loader reports it instead.
    /// </summary>
    public static string? FirstNull(JsonElement element, string path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Null:
                return path;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                    if (FirstNull(property.Value, $"{path}.{property.Name}") is { } found) return found;
                return null;
            case JsonValueKind.Array:
                int i = 0;
                foreach (var item in element.EnumerateArray())
                    if (FirstNull(item, $"{path}[{i++}]") is { } found) return found;
                return null;
            default:
                return null;
        }
    }

    private static JsonSerializerOptions Create()
    {
        var options = new JsonSerializerOptions
        {
            AllowTrailingCommas = true,
            ReadCommentHandling = JsonCommentHandling.Skip,
            PropertyNameCaseInsensitive = true,
            UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
            NumberHandling = JsonNumberHandling.AllowReadingFromString,
        };
        options.Converters.Add(new JsonStringEnumConverter());
        options.Converters.Add(new DurationJsonConverter());
        options.Converters.Add(new ScalarStringDictionaryConverter());
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }
}

/// <summary>TimeSpan from "500ms", "10s", "10m", "1h", "00:00:10" or a number of seconds.</summary>
internal sealed class DurationJsonConverter : JsonConverter<TimeSpan>
{
    public override TimeSpan Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetDouble(out var seconds) && Duration.TryFromSeconds(seconds, out var fromSeconds))
            return fromSeconds;
        if (reader.TokenType == JsonTokenType.String && Duration.TryParse(reader.GetString(), out var value))
            return value;
        throw new JsonException("expected a duration such as \"500ms\", \"10s\", \"10m\", \"1h\" or \"00:00:10\"");
    }

    public override void Write(Utf8JsonWriter writer, TimeSpan value, JsonSerializerOptions options)
        => writer.WriteStringValue(value.ToString("c"));
}

/// <summary>A size in bytes from an integer or "64KiB", "10GiB", "4m"...</summary>
internal sealed class ByteSizeJsonConverter : JsonConverter<long>
{
    public override long Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var n) && n >= 0) return n;
        if (reader.TokenType == JsonTokenType.String && ByteSize.TryParse(reader.GetString(), out var bytes)) return bytes;
        throw new JsonException("expected a size: a non-negative integer of bytes or a string such as \"64KiB\", \"4MiB\", \"10GiB\"");
    }

    public override void Write(Utf8JsonWriter writer, long value, JsonSerializerOptions options) => writer.WriteStringValue(ByteSize.Format(value));
}

/// <summary>Cache.DirectIo: "residency", "threshold" or "off" (any case); anything else names the three.</summary>
internal sealed class DirectIoModeJsonConverter : JsonConverter<Output.DirectIoMode>
{
    public override Output.DirectIoMode Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String)
            switch (reader.GetString()?.ToLowerInvariant())
            {
                case "residency": return Output.DirectIoMode.Residency;
                case "threshold": return Output.DirectIoMode.Threshold;
                case "off": return Output.DirectIoMode.Off;
            }
        throw new JsonException("expected \"residency\", \"threshold\" or \"off\"");
    }

    public override void Write(Utf8JsonWriter writer, Output.DirectIoMode value, JsonSerializerOptions options)
        => writer.WriteStringValue(value.ToString().ToLowerInvariant());
}

/// <summary>Metadata maps are string → string in YARP; operators write numbers and booleans too.</summary>
internal sealed class ScalarStringDictionaryConverter : JsonConverter<IReadOnlyDictionary<string, string>>
{
    public override IReadOnlyDictionary<string, string> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartObject) throw new JsonException("expected an object of string values");
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var key = reader.GetString()!;
            reader.Read();
            result[key] = reader.TokenType switch
            {
                JsonTokenType.String => reader.GetString()!,
                JsonTokenType.Number => System.Text.Encoding.UTF8.GetString(reader.ValueSpan),
                JsonTokenType.True => "true",
                JsonTokenType.False => "false",
                _ => throw new JsonException($"'{key}' must be a string, number or boolean"),
            };
        }
        return result;
    }

    public override void Write(Utf8JsonWriter writer, IReadOnlyDictionary<string, string> value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        foreach (var (k, v) in value) writer.WriteString(k, v);
        writer.WriteEndObject();
    }
}
