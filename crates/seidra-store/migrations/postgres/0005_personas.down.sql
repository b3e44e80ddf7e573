DROP TABLE persona_versions;
DROP TABLE personas;
