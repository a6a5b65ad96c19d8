-- uncertainty: subsets
-- The subsets of the disagreement artefact, numbered by name as disagreement.sql numbers them.
SELECT subset FROM (SELECT DISTINCT subset FROM disagreement) ORDER BY subset
